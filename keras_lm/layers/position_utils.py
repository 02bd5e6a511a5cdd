"""Shared helper for position layers: absolute positions of the tokens of a call."""

from keras import ops


def token_positions(inputs, start_index=0, positions=None):
    """Absolute positions of the tokens in `inputs` (sequence on axis 1).

    Args:
        inputs: tensor [B, T, ...].
        start_index: int or scalar tensor; position of token 0 (cached decoding).
        positions: optional int [B, T] or [T]; explicit positions (e.g. restarting at each
            packed document). Overrides `start_index`.

    Returns:
        float32 positions, [B, T] or [1, T].
    """
    if positions is not None:
        positions = ops.cast(positions, "float32")
        return positions[None, :] if len(positions.shape) == 1 else positions
    length = ops.shape(inputs)[1]
    positions = ops.arange(length, dtype="float32") + ops.cast(start_index, "float32")
    return positions[None, :]  # (1, T)
