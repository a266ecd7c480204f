"""Generic training pieces: state, optimizer, losses, the train step and the sharded set-up."""
