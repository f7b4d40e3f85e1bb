"""The ISNet Explorer: a Gradio UI over :mod:`isnet` that lays out, wires and adapts, and does no
maths.

* :mod:`explorer.app` — ``build_demo()``: the tabs composed into one ``gr.Blocks``;
* :mod:`explorer.tabs` — one builder per tab (widgets and events only);
* :mod:`explorer.handlers` — plain functions with named requests and results, one module per
  tab's work;
* :mod:`explorer.media` — uploads, masks, the mask editor, tensors, plots;
* :mod:`explorer.components` — what the tabs share; :mod:`explorer.errors` — messages for users;
* :mod:`explorer.state`, :mod:`explorer.catalog`, :mod:`explorer.theme` — models and caches,
  default models and samples, the look.
"""
