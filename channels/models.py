"""Models of the channels app."""
