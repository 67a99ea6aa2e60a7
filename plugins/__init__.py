"""Built-in partner plugins. Each is registered through the ``carbonhub.plugins``
entry-point group exactly as a third-party plugin would be."""
