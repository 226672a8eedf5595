"""Where the holes go: the occluding shapes and the masks they make (1 = missing pixel)."""
