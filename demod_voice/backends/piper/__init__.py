"""piper."""
