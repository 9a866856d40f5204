from friendly.pairwise_difference import pairwise_difference, PairwiseDifference  # noqa: F401
