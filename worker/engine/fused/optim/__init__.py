"""torch.optim's single-tensor updates over stacked parameters, one module per family."""
