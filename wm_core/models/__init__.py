"""World models that ship with the core (free of TensorFlow), and the base that model plugins build on."""
