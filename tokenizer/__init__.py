"""SentencePiece for STOP parses, with intent/slot labels as single pieces."""
