"""The research web page: chat with Sprout and compare how each channel would show the answer."""
