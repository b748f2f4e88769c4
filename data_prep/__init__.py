"""Reading the STOP release and synthesising mini-STOP (knows nothing of models)."""
