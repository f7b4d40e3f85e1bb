"""Training: configuration (config), the CPU loop (loop), Lightning scale-out (lightning),
evaluation (evaluate) and the bundled Fashion-MNIST shortcut experiment (experiment)."""
