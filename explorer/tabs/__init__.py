"""One builder per tab: ``build(ctx[, explain_widgets])`` creates the widgets inside the current
``gr.Tab`` and wires their events to :mod:`explorer.handlers`. Tabs never import each other; what
they share is in :mod:`explorer.components`."""
