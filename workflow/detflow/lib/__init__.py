"""The library layer: one concept per module, imported by the stages (``detflow.<stage>``).

A library module imports only other library modules and third-party
packages, never a stage; what two stages share lives here.
"""
