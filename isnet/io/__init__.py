"""Reading and writing: our checkpoints, foreign weight layouts, architecture inference, and the
atomic write every saved file goes through."""
