"""The Textual live view. ``tokentop.core`` never imports this package."""
