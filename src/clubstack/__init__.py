"""clubstack: the web services a small computer club runs, behind one login and one core."""

__version__ = "0.1.0"
