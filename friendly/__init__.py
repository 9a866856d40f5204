"""MNIST FC-100-100-10 networks with the thesis's adversarial defences (thesis chapter 3)."""
