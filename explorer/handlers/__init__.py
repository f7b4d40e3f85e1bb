"""Plain functions between the tabs' widgets and the engine, one module per tab's work.

Each takes a named request (a dataclass such as :class:`~explorer.handlers.explain.ExplainRequest`)
and returns named results; none needs a running Gradio server, so tests call them directly.
"""
