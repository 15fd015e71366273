"""Models of the orders app."""
