"""The original World Models Library notebook's flow as a script: PlaNet + CEM on DeepMind Control.

    .venv/bin/python examples/quickstart.py [--output_dir /tmp/experiment] [--tiny]

Steps, as in the notebook: make a task, a PlaNet world model and its four
functions, a CEM planner wrapped for exploration, collect random episodes and
visualize them, train, evaluate, then hand over to ``train_eval_loop``.
``--tiny`` shrinks everything so the script runs in about a minute on a CPU
(the test suite runs it that way).
"""

from __future__ import annotations

import argparse
import os

from wm_cem.cem import CEM
from wm_core import tasks
from wm_core.data import npz
from wm_core.loops import train_eval
from wm_core.planning import objectives, planners
from wm_core.rollout import simulate
from wm_core.reporting.visualize import visualize
from wm_planet import planet


def main(output_dir: str, tiny: bool) -> dict:
    # Task: cartpole swing-up from pixels (short episodes when tiny).
    task = tasks.DeepMindControl(domain_name="cartpole", task_name="swingup", action_repeat=8,
                                 time_limit=1.0 if tiny else None)

    # World model: PlaNet's recurrent state-space model and its functions.
    sizes = dict(deter_size=16, stoch_size=4, hidden_size=16, embed_size=64, depth=4) if tiny else {}
    model = planet.RecurrentStateSpaceModel(task=task, **sizes)
    model_dir = os.path.join(output_dir, "model")
    reset_fn = planet.create_planet_reset_fn(model=model)
    observe_fn = planet.create_planet_observe_fn(model=model, model_dir=model_dir)
    predict_fn = planet.create_planet_predict_fn(model=model)
    train_fn = planet.create_planet_train_fn(model=model, train_steps=5 if tiny else 100,
                                             batch=4 if tiny else 50, duration=5 if tiny else 50,
                                             learning_rate=1e-3, model_dir=model_dir)

    # Planner: CEM for evaluation; random cold start and noise for training.
    base_cem = CEM(predict_fn=predict_fn, observe_fn=observe_fn, reset_fn=reset_fn, task=task,
                   objective_fn=objectives.DiscountedReward(), horizon=12,
                   iterations=2 if tiny else 10, proposals=50 if tiny else 1000, fraction=0.1)
    random_cold_start_episodes = 2 if tiny else 5
    train_cem = planners.RandomColdStart(task=task, random_episodes=random_cold_start_episodes,
                                         base_planner=base_cem)
    train_cem = planners.GaussianRandomNoise(task=task, stdev=0.3, base_planner=train_cem)

    # Collect random episodes, visualize them, save and train.
    episodes = []
    for i in range(random_cold_start_episodes):
        episode, predictions, score = simulate.simulate(task=task, planner=train_cem, num_episodes=1)
        visualize(summary_dir=os.path.join(output_dir, "train"), global_step=i,
                             episodes=episode, predictions=predictions, scalars={"score": score})
        episodes.extend(episode)
    train_data_dir = os.path.join(output_dir, "data", "train")
    npz.save_dictionaries(episodes, train_data_dir)
    train_fn(train_data_dir)

    # Evaluate the noise-free planner.
    episode, predictions, score = simulate.simulate(task=task, planner=base_cem, num_episodes=1)
    visualize(summary_dir=os.path.join(output_dir, "eval"), global_step=0,
                         episodes=episode, predictions=predictions, scalars={"score": score})

    # The off-the-shelf loop does all of the above, resumably.
    return train_eval.train_eval_loop(
        task=task, train_planner=train_cem, eval_planner=base_cem, train_fn=train_fn,
        num_train_episodes_per_iteration=1, eval_every_n_iterations=1 if tiny else 10,
        num_iterations=1 if tiny else 100, episodes_dir=os.path.join(output_dir, "loop", "data"),
        model_dir=model_dir)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="/tmp/experiment")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, for a quick check")
    arguments = parser.parse_args()
    print(main(arguments.output_dir, arguments.tiny))
