"""What users run on their own photos: `vaeinpaint inpaint`."""
