"""realdata: Feature Kernel Distillation and its baselines on images (CIFAR-100, CIFAR-10, Fashion-MNIST)."""
