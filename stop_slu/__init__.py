"""stop-slu: direct spoken language understanding on STOP with SpeechBrain."""
