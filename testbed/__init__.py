"""The test bed: images, compose stacks and load generation shared by tests and benchmarks."""
