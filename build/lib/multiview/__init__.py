"""multiview: Allen-Zhu & Li's multi-view data and two-layer networks, simulated, with Feature Kernel Distillation."""
