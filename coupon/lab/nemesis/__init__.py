"""The nemesis: a crowd on several coupons under a seeded schedule of overlapping faults."""
