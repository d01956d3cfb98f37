"""The tutorial's model API, kept in the tutorial's shape: the benchmark's baseline, not for production.

Flask's development server (``app.run``), a pickled model loaded once at start, and per request
one ``predict`` on the request's features reshaped to a single row, answered with ``jsonify``.
Only three things come from the environment so the benchmark can run it next to the others: the
pickle's path, the address (loopback here; the tutorial binds all interfaces) and the port.
"""

import os
import pickle

import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)

# The tutorial unpickles its model file as the module loads.
with open(os.environ.get("MODEL_PATH", "model.pkl"), "rb") as model_file:
    model = pickle.load(model_file)


@app.route("/predict", methods=["POST"])
def predict():
    data = request.get_json(force=True)
    features = np.array(data["features"]).reshape(1, -1)
    prediction = model.predict(features)
    return jsonify({"prediction": prediction.tolist()})


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")))
