"""Pieces shared by every stage: errors, atomic files, images, devices, progress."""
