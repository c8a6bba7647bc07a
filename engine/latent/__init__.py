"""The shared latent layer: the direction bank format, principal (pose) axes and projection, z -> w mapping, and
the locality filters that keep an expression direction inside its region.

Everything that reads or moves latents (distillers, inversion, the Animator, the bundle) builds on this package;
it depends only on the generators and the landmark schema.
"""
