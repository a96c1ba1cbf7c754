"""The SV2P model: an action-conditioned conv-LSTM frame and reward predictor, and its loss.

One step (Finn et al. 2016, CDNA variant; Babaeizadeh et al. 2018 latent):

* encoder: stride-2 conv → two conv-LSTMs (``H/2``) → stride-2 conv → two
  conv-LSTMs (``H/4``) → stride-2 conv (``H/8``);
* bottleneck: the action (tiled over space) and the latent map are
  concatenated, mixed by a 1x1 conv and fed to a conv-LSTM;
* decoder: transposed convs back to ``H/4``, ``H/2``, ``H`` with a conv-LSTM
  at each of the first two and skip connections from the encoder;
* output: compositing masks (softmax over ``num_masks + 2`` channels) blend
  the previous frame (the static background), a directly generated image and
  ``num_masks`` CDNA transformations of the previous frame (kernels predicted
  from the bottleneck);
* reward decoder (:class:`RewardDecoder`): strided convs + MLP on the
  transition's two frames ``(x_k, predicted x_{k+1})`` and the action.

The reward decoder reads frames, not the bottleneck state, and no gradient
flows from it into the frame predictor (why: docs/design.md, "SV2P's reward
decoder reads stop-gradient frames").

Step ``k`` takes frame ``x_k`` and the action ``a_{k+1}`` that leads from it
(episode rows, see :mod:`wm_core.api.contracts`) and predicts ``x_{k+1}`` and
``r_{k+1}``.  Frames are ``float32`` in ``[0, 1)``, channels-last
(:func:`to_unit_float`: ``x / 256``, :mod:`wm_tf.images`).

The loss (:func:`sequence_loss`) of a training chunk of ``L = input_length +
output_length`` episode rows: the predictor reads the ``input_length``
ground-truth context rows, then predicts rows ``input_length .. L-1`` from
its own previous predictions (or, with scheduled sampling, sometimes the
true previous frame); per chunk

``mean squared pixel error over rows 1..L-1``
``+ reward_weight * mean squared standardised reward error over rows 1..L-1``
``+ kl_weight(step) * KL(q(z | chunk) || N(0, I))`` (mean per latent element).

The reward error is divided by the decoder's reward scale squared (see
:class:`RewardDecoder`), so its gradients do not depend on the task's reward
units (why: docs/design.md).  The ``reward_loss`` metric is the raw error.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from wm_sv2p.latent import KLSchedule, LatentTower, kl_to_prior
from wm_sv2p.networks import CDNA, ConvLSTM, composite
from wm_tf.images import postprocess, preprocess

__all__ = [
    "FramePredictor",
    "RewardDecoder",
    "sequence_loss",
    "true_frame_probability",
    "to_unit_float",
    "to_uint8",
]

LSTMState = tuple[tuple[tf.Tensor, tf.Tensor], ...]


def to_unit_float(images: tf.Tensor) -> tf.Tensor:
    """``uint8`` images → ``float32`` ``x / 256`` in ``[0, 1)``; ``TypeError`` for other dtypes."""
    return preprocess(images, bits=8, offset=0.0)


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """``float32`` images in ``[0, 1)`` → ``uint8`` (``floor(256 x)``, clipped),
    the inverse of :func:`to_unit_float`."""
    return postprocess(images, bits=8, offset=0.0)


class RewardDecoder(tf_keras.layers.Layer):
    """The reward of a transition, read off its frames and action.

    ``call(frame [B,H,W,C], next_frame [B,H,W,C], action [B,A])`` → ``[B]``
    ``float32``.  Frames are ``[0, 1]`` floats; gradients stop at them, so
    the reward loss trains this decoder only.  Three stride-2 convs, a
    hidden dense layer on the flattened features and the action, and one
    output in standardised units: the reward is ``output * scale + offset``,
    where ``offset`` and ``scale`` are non-trainable weights (saved with
    the model) that the trainer sets once from the data
    (:meth:`set_statistics`).
    """

    def __init__(self, base_channels: int, **kwargs):
        super().__init__(**kwargs)
        c = base_channels
        self.convs = [
            tf_keras.layers.Conv2D(width, kernel, strides=2, padding="same", activation="relu")
            for width, kernel in ((c, 5), (2 * c, 3), (2 * c, 3))
        ]
        self.hidden = tf_keras.layers.Dense(4 * c, activation="relu")
        self.out = tf_keras.layers.Dense(1)
        self.offset = self.add_weight(name="offset", shape=(), initializer="zeros", trainable=False)
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=False)

    def call(self, frame: tf.Tensor, next_frame: tf.Tensor, action: tf.Tensor) -> tf.Tensor:
        hidden = tf.stop_gradient(tf.concat([frame, next_frame], -1))
        for conv in self.convs:
            hidden = conv(hidden)
        flat = tf.reshape(hidden, [tf.shape(hidden)[0], -1])
        features = self.hidden(tf.concat([flat, action], -1))
        return self.out(features)[:, 0] * self.scale + self.offset

    def set_statistics(self, mean: float, std: float) -> None:
        """Standardise the output to rewards of this ``mean`` and ``std``
        (``std <= 1e-6`` keeps the scale at 1)."""
        self.offset.assign(mean)
        self.scale.assign(std if std > 1e-6 else 1.0)


class FramePredictor(tf_keras.Model):
    """The SV2P predictor and its latent tower (see module docs).

    :param frame_size: ``(H, W, C)``, ``H`` and ``W`` multiples of 8.
    :param base_channels: width ``c`` of the first conv-LSTMs; the seven
        conv-LSTMs have ``(c, c, 2c, 2c, 4c, 2c, c)`` channels (``c = 32`` is
        the published network).
    """

    def __init__(
        self,
        frame_size: tuple[int, int, int],
        action_dim: int,
        num_masks: int = 10,
        latent_channels: int = 1,
        base_channels: int = 32,
        lstm_kernel: int = 5,
        cdna_kernel: int = 5,
    ):
        super().__init__()
        height, width, channels = frame_size
        if height % 8 or width % 8:
            raise ValueError(f"frame_size {frame_size}: height and width must be multiples of 8")
        self.frame_size = tuple(frame_size)
        self.action_dim = action_dim
        self.latent_channels = latent_channels
        self.latent_shape = (height // 8, width // 8, latent_channels)
        c = base_channels
        conv = tf_keras.layers.Conv2D
        deconv = tf_keras.layers.Conv2DTranspose
        self.encode_full = conv(c, 5, strides=2, padding="same", activation="relu")
        self.encode_half = conv(2 * c, 3, strides=2, padding="same", activation="relu")
        self.encode_quarter = conv(2 * c, 3, strides=2, padding="same", activation="relu")
        self.condition = conv(4 * c, 1, activation="relu")
        self.decode_eighth = deconv(2 * c, 3, strides=2, padding="same", activation="relu")
        self.decode_quarter = deconv(c, 3, strides=2, padding="same", activation="relu")
        self.decode_half = deconv(c, 3, strides=2, padding="same", activation="relu")
        self.norms = [tf_keras.layers.LayerNormalization() for _ in range(2)]
        self.lstms = [
            ConvLSTM(width_, lstm_kernel)
            for width_ in (c, c, 2 * c, 2 * c, 4 * c, 2 * c, c)
        ]
        self.lstm_resolutions = (2, 2, 4, 4, 8, 4, 2)
        self.generate = conv(channels, 1, activation="sigmoid")
        self.mask_logits = conv(num_masks + 2, 1)
        self.cdna = CDNA(num_masks, cdna_kernel)
        self.reward_decoder = RewardDecoder(c)
        self.latent_tower = LatentTower(latent_channels, c)

    def zero_state(self, batch: tf.Tensor) -> LSTMState:
        """All-zero conv-LSTM states for ``batch`` sequences."""
        height, width, _ = self.frame_size
        return tuple(
            lstm.zero_state(batch, height // scale, width // scale)
            for lstm, scale in zip(self.lstms, self.lstm_resolutions)
        )

    def step(
        self, frame: tf.Tensor, action: tf.Tensor, latent: tf.Tensor, state: LSTMState
    ) -> tuple[tf.Tensor, tf.Tensor, LSTMState]:
        """``frame [B,H,W,C]``, ``action [B,A]``, ``latent [B,h,w,L]`` →
        ``(next_frame [B,H,W,C], reward [B], new_state)``."""
        new_state = []

        def lstm(index: int, inputs: tf.Tensor) -> tf.Tensor:
            hidden, cell_state = self.lstms[index](inputs, state[index])
            new_state.append(cell_state)
            return hidden

        half = self.norms[0](self.encode_full(frame))
        hidden1 = lstm(0, half)
        hidden2 = lstm(1, hidden1)
        hidden3 = lstm(2, self.encode_half(hidden2))
        hidden4 = lstm(3, hidden3)
        eighth = self.encode_quarter(hidden4)
        tiled_action = tf.tile(action[:, None, None, :], [1, *self.latent_shape[:2], 1])
        bottleneck = lstm(4, self.condition(tf.concat([eighth, tiled_action, latent], -1)))
        hidden6 = lstm(5, self.decode_eighth(bottleneck))
        hidden7 = lstm(6, self.decode_quarter(tf.concat([hidden6, hidden4], -1)))
        full = self.norms[1](self.decode_half(tf.concat([hidden7, hidden2], -1)))
        next_frame = composite(
            frame, self.generate(full), self.cdna(bottleneck), self.mask_logits(full)
        )
        reward = self.reward_decoder(frame, next_frame, action)
        return next_frame, reward, tuple(new_state)

    def observe_context(
        self, frames: tf.Tensor, actions: tf.Tensor, latent: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, LSTMState]:
        """Condition on ground-truth context rows.

        ``frames [B, n, H, W, C]``, ``actions [B, n, A]`` (row ``k``'s action
        led to ``frames[:, k]``; row 0's is ignored).  Returns the
        reconstructions of rows ``1 .. n-1`` (``[B, n-1, H, W, C]``), their
        rewards ``[B, n-1]`` and the state after the last context frame was
        read up to, not including, its next action.
        """
        state = self.zero_state(tf.shape(frames)[0])
        predicted_frames, predicted_rewards = [], []
        for row in range(frames.shape[1] - 1):
            frame, reward, state = self.step(frames[:, row], actions[:, row + 1], latent, state)
            predicted_frames.append(frame)
            predicted_rewards.append(reward)
        if not predicted_frames:
            empty = tf.zeros_like(frames[:, :0])
            return empty, tf.zeros_like(actions[:, :0, 0]), state
        return tf.stack(predicted_frames, 1), tf.stack(predicted_rewards, 1), state

    def imagine(
        self,
        last_frame: tf.Tensor,
        future_actions: tf.Tensor,
        latent: tf.Tensor,
        state: LSTMState,
        true_frames: tf.Tensor | None = None,
        true_frame_probability: tf.Tensor | float = 0.0,
        sampling_seed: tf.Tensor | None = None,
        keep_frames: bool = True,
    ) -> tuple[tf.Tensor | None, tf.Tensor]:
        """Roll out ``future_actions [B, T, A]`` from ``last_frame [B,H,W,C]``.

        Each step feeds the previous prediction back in; with
        ``true_frames [B, T, H, W, C]`` (scheduled sampling) each example
        instead reads the true previous frame with probability
        ``true_frame_probability``, drawn statelessly from
        ``sampling_seed`` (``int64 [2]``, required then).  Returns ``(frames [B, T, H, W, C],
        rewards [B, T])``; with ``keep_frames=False`` the predicted frames
        are only fed back, not kept, and ``frames`` is ``None``.  ``T`` may
        be dynamic (one ``tf.while_loop``).
        """
        batch = tf.shape(future_actions)[0]
        horizon = tf.shape(future_actions)[1]
        frames = tf.TensorArray(tf.float32, size=horizon, element_shape=last_frame.shape)
        rewards = tf.TensorArray(tf.float32, size=horizon, element_shape=[None])

        def body(index, frame, state, frames, rewards):
            next_frame, reward, state = self.step(frame, future_actions[:, index], latent, state)
            if keep_frames:
                frames = frames.write(index, next_frame)
            rewards = rewards.write(index, reward)
            if true_frames is not None:
                step_seed = tf.random.experimental.stateless_fold_in(sampling_seed, index)
                use_truth = tf.random.stateless_uniform([batch], step_seed) < true_frame_probability
                next_frame = tf.where(use_truth[:, None, None, None], true_frames[:, index], next_frame)
            return index + 1, next_frame, state, frames, rewards

        _, _, _, frames, rewards = tf.while_loop(
            lambda index, *_: index < horizon,
            body,
            (tf.constant(0), last_frame, state, frames, rewards),
        )
        rewards = tf.transpose(rewards.stack(), [1, 0])
        if not keep_frames:
            return None, rewards
        return tf.transpose(frames.stack(), [1, 0, 2, 3, 4]), rewards

    def prior_latent(self, batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """``z ~ N(0, I)``, ``[batch, h, w, L]``, drawn statelessly from ``seed [2]``."""
        return tf.random.stateless_normal([batch, *self.latent_shape], seed=seed)

    def build_variables(self, input_length: int, output_length: int) -> None:
        """Create every variable now (call inside the strategy's scope)."""
        length = input_length + output_length
        frames = tf.zeros([1, length, *self.frame_size])
        actions = tf.zeros([1, length, self.action_dim])
        self.latent_tower(frames)
        latent = self.prior_latent(1, tf.constant([0, 0], tf.int64))
        self.step(frames[:, 0], actions[:, 0], latent, self.zero_state(1))


def true_frame_probability(step: tf.Tensor, scheduled_sampling_k: float) -> tf.Tensor:
    """Scheduled sampling (Bengio et al. 2015, inverse sigmoid decay):
    ``k / (k + exp(step / k))``; 0 (never feed true frames) when ``k == 0``."""
    if scheduled_sampling_k == 0:
        return tf.constant(0.0)
    k = float(scheduled_sampling_k)
    step = tf.cast(step, tf.float32)
    return k / (k + tf.exp(tf.minimum(step / k, 80.0)))


def sequence_loss(
    network: FramePredictor,
    schedule: KLSchedule,
    chunk: dict[str, tf.Tensor],
    step: tf.Tensor,
    input_length: int,
    reward_weight: float,
    scheduled_sampling_k: float,
    seed: tf.Tensor,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Per-chunk losses ``[B]`` and per-chunk metrics (see module docs).

    ``chunk``: ``image`` uint8 ``[B, L, H, W, C]``, ``action`` float32
    ``[B, L, A]``, ``reward`` float32 ``[B, L]``.  All sampling (latents,
    scheduled sampling) is drawn statelessly from ``seed`` (``int64 [2]``).
    """
    frames = to_unit_float(chunk["image"])
    actions = tf.cast(chunk["action"], tf.float32)
    rewards = tf.cast(chunk["reward"], tf.float32)
    batch = tf.shape(frames)[0]
    posterior_seed, prior_seed, sampling_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3)
    )

    mean, std = network.latent_tower(frames)
    posterior = mean + std * tf.random.stateless_normal(tf.shape(mean), posterior_seed)
    prior = tf.random.stateless_normal(tf.shape(mean), prior_seed)
    latent = tf.where(schedule.uses_posterior(step), posterior, prior)
    kl = kl_to_prior(mean, std)

    context_frames, context_rewards, state = network.observe_context(
        frames[:, :input_length], actions[:, :input_length], latent
    )
    probability = true_frame_probability(step, scheduled_sampling_k)
    future_frames, future_rewards = network.imagine(
        frames[:, input_length - 1],
        actions[:, input_length:],
        latent,
        state,
        true_frames=frames[:, input_length:] if scheduled_sampling_k else None,
        true_frame_probability=probability,
        sampling_seed=sampling_seed,
    )
    predicted_frames = tf.concat([context_frames, future_frames], axis=1)
    predicted_rewards = tf.concat([context_rewards, future_rewards], axis=1)
    reconstruction = tf.reduce_mean(tf.square(predicted_frames - frames[:, 1:]), axis=[1, 2, 3, 4])
    reward_loss = tf.reduce_mean(tf.square(predicted_rewards - rewards[:, 1:]), axis=1)
    kl_weight = schedule.weight(step)
    scale = network.reward_decoder.scale
    loss = reconstruction + reward_weight * reward_loss / tf.square(scale) + kl_weight * kl
    ones = tf.ones([batch])
    metrics = {
        "loss": loss,
        "reconstruction": reconstruction,
        "reward_loss": reward_loss,
        "kl": kl,
        "kl_weight": kl_weight * ones,
        "true_frame_probability": probability * ones,
    }
    return loss, metrics
