"""Backend-neutral pieces that every backend builds on."""
