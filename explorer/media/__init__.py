"""Pictures in and out of the explorer: decoding uploads, masks, the mask editor, tensors, plots."""
