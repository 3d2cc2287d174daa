"""The history of a run and the checker that judges it against the final state, as Jepsen does."""
