"""PlaNet as a wm world model: :class:`PlaNet`, and the functional API of the
original World Models Library, ``create_planet_*_fn(model, ...)``.

::

    world_model = PlaNet(task, model_dir)      # the wm.world_models entry point 'planet'
    world_model.predict_fn, world_model.train_fn, ...

or, function by function (as the gin configs build it):

    model = RecurrentStateSpaceModel(task=task)
    reset_fn = create_planet_reset_fn(model)
    observe_fn = create_planet_observe_fn(model, model_dir, strategy)
    predict_fn = create_planet_predict_fn(model, strategy)
    train_fn = create_planet_train_fn(model, 100, 50, 50, 1e-3, model_dir, strategy)

State (owned by the caller, never mutated here): ``{"deter": float32
[1, deter_size], "stoch": float32 [1, stoch_size]}`` — the GRU state and
the stochastic state of the posterior after the last observed frame.
``stoch`` is a posterior *sample* when the observe function was made with
``sample=True`` (the default, as PlaNet acts), the posterior mean otherwise.

All functions of one model must be given the same strategy (its variables
live there).  Observe and predict run in the strategy's cross-replica
context, i.e. on one device: one observed state is broadcast to all
proposals inside one compiled ``tf.function`` call.

Everything here is gin-configurable under the module ``planet``
(``planet.RecurrentStateSpaceModel``, ``planet.create_planet_train_fn`` ...);
``planet.MirroredStrategy`` is ``tf.distribute.MirroredStrategy``.
"""

from __future__ import annotations

import tempfile
from typing import Any, Sequence

import gin
import numpy as np
import tensorflow as tf

from wm_core.checks import check_future_actions, check_observe_args
from wm_core.contracts import (
    ObserveFn,
    PredictFn,
    Predictions,
    ResetFn,
    State,
    TrainFn,
    WorldModel,
)
from wm_core.tf_helpers import CheckpointWatcher
from wm_core.training import TrainLoop
from wm_planet.model import RecurrentStateSpaceModel
from wm_planet.noise import generator
from wm_planet.training import Trainer

__all__ = [
    "PlaNet",
    "RecurrentStateSpaceModel",
    "create_planet_reset_fn",
    "create_planet_observe_fn",
    "create_planet_predict_fn",
    "create_planet_predict_batch_fn",
    "create_planet_train_fn",
]

gin.external_configurable(tf.distribute.MirroredStrategy, "MirroredStrategy", module="planet")


def _state_signature(model: RecurrentStateSpaceModel) -> dict[str, tf.TensorSpec]:
    return {
        "deter": tf.TensorSpec([1, model.cell.deter_size], tf.float32),
        "stoch": tf.TensorSpec([1, model.cell.stoch_size], tf.float32),
    }


def _checked_state(model: RecurrentStateSpaceModel, state: State) -> dict[str, np.ndarray]:
    signature = _state_signature(model)
    if not isinstance(state, dict) or sorted(state) != sorted(signature):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"PlaNet state must be a dict with keys ['deter', 'stoch'], got {keys}")
    checked = {}
    for key, spec in signature.items():
        value = np.asarray(state[key])
        if value.shape != tuple(spec.shape) or value.dtype != np.float32:
            raise ValueError(
                f"state[{key!r}] is {value.dtype} {value.shape}; expected float32 {tuple(spec.shape)}"
            )
        checked[key] = value
    return checked


def _noise(model: RecurrentStateSpaceModel, sample: bool, stream: str) -> tf.random.Generator | None:
    return generator(model.seed, stream) if sample else None


@gin.configurable(module="planet")
def create_planet_reset_fn(model: RecurrentStateSpaceModel) -> ResetFn:
    """``reset_fn(**kwargs) -> state``: the zero state (see module docs); kwargs are ignored."""

    def reset_fn(**kwargs: Any) -> State:
        return {
            "deter": np.zeros((1, model.cell.deter_size), np.float32),
            "stoch": np.zeros((1, model.cell.stoch_size), np.float32),
        }

    return reset_fn


@gin.configurable(module="planet")
def create_planet_observe_fn(
    model: RecurrentStateSpaceModel,
    model_dir: str,
    strategy: tf.distribute.Strategy | None = None,
    sample: bool = True,
) -> ObserveFn:
    """``observe_fn(last_frames, last_actions, last_rewards, state) -> state``.

    Filters the ``T`` rows (``uint8 [T, 64, 64, C]``, ``float32 [T, A]``,
    ``[T]``) with the posterior, row by row, starting from ``state``.  The
    posterior does not read rewards; ``last_rewards`` is only checked.
    Before filtering, restores the newest checkpoint in ``model_dir`` if a
    new one appeared (one ``os.stat`` per call otherwise).
    """
    model.build(strategy)
    watcher = CheckpointWatcher(tf.train.Checkpoint(model=model), model_dir)
    noise = _noise(model, sample, "observe")
    frame_spec = tf.TensorSpec([None, *model.frame_size], tf.uint8)
    action_spec = tf.TensorSpec([None, model.action_dim], tf.float32)

    @tf.function(input_signature=[frame_spec, action_spec, _state_signature(model)], autograph=False)
    def posterior(frames, actions, state):
        states, _ = model.observe(frames[None], actions[None], state, noise)
        return {key: value[:, -1] for key, value in states.items()}

    def observe_fn(
        last_frames: np.ndarray, last_actions: np.ndarray, last_rewards: np.ndarray, state: State
    ) -> State:
        frames, actions, _ = check_observe_args(
            last_frames, last_actions, last_rewards, frame_shape=model.frame_size,
            action_dim=model.action_dim, where="PlaNet observe_fn",
        )
        checked = _checked_state(model, state)
        watcher.poll()
        new_state = posterior(frames, actions, checked)
        return {key: value.numpy() for key, value in new_state.items()}

    return observe_fn


def _rollout(
    model: RecurrentStateSpaceModel,
    strategy: tf.distribute.Strategy | None,
    return_frames: bool,
    sample: bool,
    jit_compile: bool,
):
    """``run(actions float32 [M, H, A], starts {"deter": [M, D], "stoch": [M, S]})
    -> predictions [M, H, ...]``: the prior rolled open-loop from each start
    (or from one start of one row, shared by all ``M``).

    Traced once per horizon ``H``, unrolled over its steps; with
    ``jit_compile`` XLA compiles it (once per ``M`` and ``H``), fusing each
    step's elementwise work: the same computation, equal up to float
    rounding, ~10% faster on CPU (``benchmarks/bench_planet.py``), sampled
    rollouts included (:mod:`wm_planet.noise` draws the same numbers either way).
    """
    model.build(strategy)
    noise = _noise(model, sample, "predict")

    def rollout(actions, starts):
        features = model.cell.features(model.imagine(actions, starts, noise))
        predictions = {"reward": model.reward(features)}
        if return_frames:
            predictions["image"] = model.frames(features)
        return predictions

    starts_spec = {
        "deter": tf.TensorSpec([None, model.cell.deter_size], tf.float32),
        "stoch": tf.TensorSpec([None, model.cell.stoch_size], tf.float32),
    }
    rollouts: dict[int, Any] = {}  # horizon -> compiled rollout, unrolled over that horizon

    def run(actions: np.ndarray, starts: dict[str, np.ndarray]) -> Predictions:
        horizon = actions.shape[1]
        if horizon not in rollouts:
            action_spec = tf.TensorSpec([None, horizon, model.action_dim], tf.float32)
            rollouts[horizon] = tf.function(
                rollout, input_signature=[action_spec, starts_spec], jit_compile=jit_compile,
                autograph=False,
            )
        return {key: value.numpy() for key, value in rollouts[horizon](actions, starts).items()}

    return run


def _checked_proposals(model: RecurrentStateSpaceModel, future_actions: Any, ndim: int) -> np.ndarray:
    where = "PlaNet predict_batch_fn" if ndim == 4 else "PlaNet predict_fn"
    actions = check_future_actions(future_actions, model.action_dim, where, batch=ndim == 4)
    if 0 in actions.shape[:-1]:
        raise ValueError(
            f"future_actions is {actions.shape}; PlaNet needs P >= 1 proposals of H >= 1 steps"
            + (" for N >= 1 states" if ndim == 4 else "")
        )
    return actions


@gin.configurable(module="planet")
def create_planet_predict_fn(
    model: RecurrentStateSpaceModel,
    strategy: tf.distribute.Strategy | None = None,
    return_frames: bool = False,
    sample: bool = True,
    jit_compile: bool = True,
) -> PredictFn:
    """``predict_fn(future_actions, state) -> {"reward": float32 [P, H]}``.

    Rolls the prior open-loop from ``state`` for all ``P`` proposals at once
    (one compiled call, the state broadcast to ``P``); with ``sample`` the
    stochastic states are drawn, as PlaNet plans, else the prior means are
    used (deterministic).  ``reward[:, j]`` is the predicted mean reward for
    ``future_actions[:, j]``.  With ``return_frames``, also ``image uint8
    [P, H, 64, 64, C]``.  ``state`` is read, never written.  ``jit_compile``:
    compile the rollout with XLA.
    """
    run = _rollout(model, strategy, return_frames, sample, jit_compile)

    def predict_fn(future_actions: np.ndarray, state: State) -> Predictions:
        actions = _checked_proposals(model, future_actions, ndim=3)
        state = _checked_state(model, state)
        return run(actions, state)  # one row, shared by every proposal

    return predict_fn


@gin.configurable(module="planet")
def create_planet_predict_batch_fn(
    model: RecurrentStateSpaceModel,
    strategy: tf.distribute.Strategy | None = None,
    return_frames: bool = False,
    sample: bool = True,
    jit_compile: bool = True,
) -> Any:
    """``predict_batch_fn(future_actions float32 [N, P, H, A], states) -> {"reward": float32 [N, P, H]}``.

    The batched form of :func:`create_planet_predict_fn` for ``N`` states
    (one per environment): row ``i`` equals ``predict_fn(future_actions[i],
    states[i])`` (exactly with ``sample=False``; with sampling, another draw),
    computed as one rollout of ``N * P`` proposals.
    """
    run = _rollout(model, strategy, return_frames, sample, jit_compile)

    def predict_batch_fn(future_actions: np.ndarray, states: Sequence[State]) -> Predictions:
        actions = _checked_proposals(model, future_actions, ndim=4)
        count, proposals = actions.shape[:2]
        if len(states) != count:
            raise ValueError(f"future_actions has {count} rows of proposals but {len(states)} states")
        checked = [_checked_state(model, state) for state in states]
        starts = {
            key: np.repeat(np.concatenate([state[key] for state in checked]), proposals, 0)
            for key in ("deter", "stoch")
        }
        flat = run(actions.reshape(count * proposals, *actions.shape[2:]), starts)
        return {key: value.reshape(count, proposals, *value.shape[1:]) for key, value in flat.items()}

    return predict_batch_fn


@gin.configurable(module="planet")
def create_planet_train_fn(
    model: RecurrentStateSpaceModel,
    train_steps: int,
    batch: int,
    chunk_length: int,
    learning_rate: float,
    model_dir: str,
    strategy: tf.distribute.Strategy | None = None,
    clip_norm: float = 1000.0,
    adam_epsilon: float = 1e-4,
    stochastic: bool = True,
    max_episodes_in_memory: int = 1000,
    checkpoints_to_keep: int = 3,
    learning_rate_ramp: int = 0,
    seed: int = 0,
) -> TrainFn:
    """``train_fn(data_path) -> None``: ``train_steps`` steps on ``batch`` chunks of ``chunk_length`` rows.

    A :class:`wm_core.training.TrainLoop` around PlaNet's
    :class:`~wm_planet.training.Trainer`: chunks from one iterator per data
    path kept across calls, every step's metrics to the ``train_step`` hook,
    a checkpoint (model, optimiser, step) in ``model_dir`` after the
    ``train_steps`` steps.  ``learning_rate_ramp``: linear warm-up steps (0:
    none).  Raises ``FileNotFoundError``/``ValueError`` for a missing or
    empty episode directory and :class:`wm_core.training.TrainingDivergedError`
    on a NaN loss.
    """
    trainer = Trainer(
        model, model_dir, learning_rate, adam_epsilon, clip_norm, strategy, stochastic,
        checkpoints_to_keep, learning_rate_ramp,
    )
    return TrainLoop(
        trainer, train_steps, batch, chunk_length, seed=seed,
        max_episodes_in_memory=max_episodes_in_memory,
    )


@gin.configurable(module="planet")
class PlaNet(WorldModel):
    """PlaNet as one world model: the four functions over one RSSM.

    :param task: the wm task (its action space sizes the model).
    :param model_dir: checkpoint directory, shared by training (writes) and
        observe (restores the newest); ``None``: a new temporary directory.
    :param model: the network; default ``RecurrentStateSpaceModel(task=task)``
        at the published sizes.
    :param strategy: the ``tf.distribute`` strategy for all four functions.
    :param sample: observe and predict with sampled states (as PlaNet plans).
    :param train_settings: keyword arguments of :func:`create_planet_train_fn`
        (default: the published 100 steps of 50 chunks of 50 rows at 1e-3).
    """

    def __init__(
        self,
        task: Any,
        model_dir: str | None = None,
        model: RecurrentStateSpaceModel | None = None,
        strategy: tf.distribute.Strategy | None = None,
        sample: bool = True,
        **train_settings: Any,
    ):
        self.model = model or RecurrentStateSpaceModel(task=task)
        self.model_dir = model_dir or tempfile.mkdtemp(prefix="wm-planet-")
        settings = dict(train_steps=100, batch=50, chunk_length=50, learning_rate=1e-3)
        settings.update(train_settings)
        self.reset = create_planet_reset_fn(self.model)
        self.observe = create_planet_observe_fn(self.model, self.model_dir, strategy, sample)
        self.predict = create_planet_predict_fn(self.model, strategy, sample=sample)
        self.predict_batch = create_planet_predict_batch_fn(self.model, strategy, sample=sample)
        self.train = create_planet_train_fn(self.model, model_dir=self.model_dir, strategy=strategy,
                                            **settings)
