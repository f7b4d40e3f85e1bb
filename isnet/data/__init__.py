"""Data: images with foreground masks (ImageSet), their sources (Fashion-MNIST, the synthetic
colour set, user folders and zips) and synthetic background bias (:mod:`isnet.data.bias`)."""

from isnet.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from isnet.data.image_set import ImageMaskDataset, ImageSet, as_dataset

__all__ = ["FASHION_MNIST_CLASSES", "ImageMaskDataset", "ImageSet", "as_dataset",
           "load_fashion_mnist"]
