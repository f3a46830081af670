"""powersim: a pandapower power flow served over REST, a websocket and GraphQL."""

__version__ = "0.1.0"
