"""The custom functions and links of the thesis's networks (chapter 3), with their kernels:
Angular (3.2.4), Elastic Sigmoid (3.2.2), Pairwise Difference (3.2.3; pd_kernels.py launches
pairwise_difference.cu on a GPU), and the sigmoid as the thesis GPU's CUDA kernel computes it."""
