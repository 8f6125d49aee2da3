"""The rules of the concurrent-learning loop, free of AiiDA: the exploration schedule and what a history record
says. The campaign client and the WorkChains both use them; they import nothing from either."""
