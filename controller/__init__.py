"""The controller: runs sessions of rounds, reduces combiner results, commits models to the trail."""
