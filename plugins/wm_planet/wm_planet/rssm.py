"""The recurrent state-space model cell of PlaNet (Hafner et al. 2019, §3).

A latent state is a dict ``{"deter": [B, D], "stoch": [B, S]}``: the GRU's
deterministic state and a sample (or the mean) of the stochastic state.
One step with action ``a`` (the action that led to the next frame):

* transition: ``deter' = GRU(dense_relu(concat(stoch, a)), deter)``;
* prior: ``p(stoch' | deter') = N(mean, softplus(.) + min_stddev)`` from
  one ReLU hidden layer on ``deter'``;
* posterior: ``q(stoch' | deter', embed')`` from one ReLU hidden layer on
  ``concat(deter', embed')``, where ``embed'`` encodes the next frame.

(The published code's layout: hidden layers of ``hidden_size`` units, ReLU.)

The stochastic state is drawn by reparameterisation from the ``noise``
generator when one is given (:func:`wm_planet.noise.standard_normal`), and is the
distribution mean otherwise.  Sequences are batch-major, ``[B, T, ...]``
(time-major only inside :func:`tf.scan`).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from wm_planet.noise import standard_normal

__all__ = ["RSSM", "gaussian"]

tfd = tfp.distributions

State = dict[str, tf.Tensor]
_STATISTICS = ("prior_mean", "prior_std", "posterior_mean", "posterior_std")


def gaussian(mean: tf.Tensor, std: tf.Tensor) -> tfd.Distribution:
    """A diagonal Gaussian over the last axis (event shape ``[S]``)."""
    return tfd.MultivariateNormalDiag(mean, std)


class RSSM(tf.Module):
    """Deterministic GRU path plus Gaussian stochastic state (see module docs)."""

    def __init__(
        self,
        deter_size: int,
        stoch_size: int,
        hidden_size: int,
        min_stddev: float = 0.1,
        dtype: str = "float32",
    ):
        super().__init__(name="rssm")
        self.deter_size, self.stoch_size, self.min_stddev = deter_size, stoch_size, min_stddev
        dense = tf_keras.layers.Dense
        self.transition_input = dense(hidden_size, activation="relu", dtype=dtype)
        self.gru = tf_keras.layers.GRUCell(deter_size, dtype=dtype)
        self.prior_hidden = dense(hidden_size, activation="relu", dtype=dtype)
        self.prior_stats = dense(2 * stoch_size, dtype=dtype)
        self.posterior_hidden = dense(hidden_size, activation="relu", dtype=dtype)
        self.posterior_stats = dense(2 * stoch_size, dtype=dtype)

    def initial_state(self, batch_size: int | tf.Tensor) -> State:
        """All-zero state ``{"deter": [B, D], "stoch": [B, S]}`` (float32)."""
        return {
            "deter": tf.zeros([batch_size, self.deter_size], tf.float32),
            "stoch": tf.zeros([batch_size, self.stoch_size], tf.float32),
        }

    @staticmethod
    def features(state: State) -> tf.Tensor:
        """``concat(deter, stoch)``: what the decoder and reward head read."""
        return tf.concat([state["deter"], state["stoch"]], -1)

    def _statistics(self, layer: tf_keras.layers.Layer, hidden: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mean, raw_std = tf.split(tf.cast(layer(hidden), tf.float32), 2, -1)
        return mean, tf.nn.softplus(raw_std) + self.min_stddev

    @staticmethod
    def _normal(noise: tf.random.Generator | None, state: State) -> tf.Tensor | None:
        """Standard normals ``[B, S]`` for one step from ``state``, or ``None`` (use means)."""
        return None if noise is None else standard_normal(noise, tf.shape(state["stoch"]))

    @staticmethod
    def _draw(mean: tf.Tensor, std: tf.Tensor, normal: tf.Tensor | None) -> tf.Tensor:
        return mean if normal is None else mean + std * normal

    def _transition(self, state: State, action: tf.Tensor) -> tf.Tensor:
        """``deter'`` for ``action [B, A]`` from ``state`` of ``B`` rows or one row.

        One row is shared by all ``B``: the GRU's recurrent matmul runs on
        it once and its output is broadcast (the same values as a state of
        ``B`` equal rows, to float rounding).
        """
        stoch = tf.broadcast_to(state["stoch"], _rows(state["stoch"], tf.shape(action)[0]))
        hidden = self.transition_input(tf.concat([stoch, action], -1))
        previous = tf.cast(state["deter"], self.gru.compute_dtype)  # Keras casts inputs, not states
        deter, _ = self.gru(hidden, [previous])
        return tf.cast(deter, tf.float32)

    def prior_step(
        self, state: State, action: tf.Tensor, noise: tf.random.Generator | None = None
    ) -> tuple[State, tf.Tensor, tf.Tensor]:
        """One open-loop step: ``(next_state, prior_mean, prior_std)``."""
        return self._prior_step(state, action, self._normal(noise, state))

    def _prior_step(
        self, state: State, action: tf.Tensor, normal: tf.Tensor | None
    ) -> tuple[State, tf.Tensor, tf.Tensor]:
        deter = self._transition(state, action)
        mean, std = self._statistics(self.prior_stats, self.prior_hidden(deter))
        return {"deter": deter, "stoch": self._draw(mean, std, normal)}, mean, std

    def posterior_step(
        self,
        state: State,
        action: tf.Tensor,
        embed: tf.Tensor,
        noise: tf.random.Generator | None = None,
    ) -> tuple[State, dict[str, tf.Tensor]]:
        """One filtering step; returns the posterior state and the prior/posterior statistics."""
        normal = self._normal(noise, state)
        deter = self._transition(state, action)
        prior_mean, prior_std = self._statistics(self.prior_stats, self.prior_hidden(deter))
        hidden = self.posterior_hidden(tf.concat([deter, embed], -1))
        mean, std = self._statistics(self.posterior_stats, hidden)
        posterior = {"deter": deter, "stoch": self._draw(mean, std, normal)}
        statistics = {
            "prior_mean": prior_mean,
            "prior_std": prior_std,
            "posterior_mean": mean,
            "posterior_std": std,
        }
        return posterior, statistics

    def observe(
        self,
        embed: tf.Tensor,
        action: tf.Tensor,
        state: State,
        noise: tf.random.Generator | None = None,
    ) -> tuple[State, dict[str, tf.Tensor]]:
        """Filter a sequence: ``embed [B, T, E]``, ``action [B, T, A]`` from ``state``.

        Returns the posterior states ``[B, T, ...]`` and the prior/posterior
        statistics ``[B, T, S]`` of every step.
        """

        def step(carry, inputs):
            state, _ = carry
            return self.posterior_step(state, inputs[1], inputs[0], noise)

        zeros = tf.zeros_like(state["stoch"])
        statistics = {key: zeros for key in _STATISTICS}
        states, statistics = tf.scan(
            step, (_time_major(embed), _time_major(action)), initializer=(state, statistics)
        )
        return _batch_major(states), _batch_major(statistics)

    def imagine(
        self, action: tf.Tensor, state: State, noise: tf.random.Generator | None = None
    ) -> State:
        """Open-loop prior rollout: ``action [B, H, A]`` from ``state`` → states ``[B, H, ...]``.

        ``state`` has ``B`` rows, or one row that starts all ``B`` rollouts
        (as in planning, where every proposal starts from the same belief:
        the first step's recurrent matmul then runs once, not ``B`` times).
        A horizon known when tracing (``action.shape[1]``) is unrolled into
        ``H`` plain steps (no loop, no transposes: cheaper for the short
        horizons of planning); an unknown one runs in :func:`tf.scan`.  Both
        compute the same steps from the same noise, which is drawn for the
        whole rollout at once before the first step (``[H, B, S]``; cheaper
        under XLA than per-step draws, docs/design.md).
        """
        batch = tf.shape(action)[0]
        normals = None
        if noise is not None:
            normals = standard_normal(noise, tf.concat([tf.shape(action)[1:2], _rows(state["stoch"], batch)], 0))

        def step(state, action, normal=None):
            return self._prior_step(state, action, normal)[0]

        if action.shape[1] is None:
            state = {key: tf.broadcast_to(value, _rows(value, batch)) for key, value in state.items()}
            inputs = [_time_major(action)] + ([] if normals is None else [normals])
            return _batch_major(tf.scan(lambda state, each: step(state, *each), inputs, initializer=state))
        states = []
        for index in range(action.shape[1]):
            state = step(state, action[:, index], None if normals is None else normals[index])
            states.append(state)
        return {key: tf.stack([each[key] for each in states], 1) for key in state}


def _rows(tensor: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """The shape of ``tensor [N, ...]`` with ``rows`` rows."""
    return tf.concat([[rows], tf.shape(tensor)[1:]], 0)


def _time_major(tensor: tf.Tensor) -> tf.Tensor:
    return tf.transpose(tensor, tf.concat([[1, 0], tf.range(2, tf.rank(tensor))], 0))


def _batch_major(tree):
    return tf.nest.map_structure(_time_major, tree)
