"""The hub's own web pages: the user page, the bank's console and public share cards."""
