"""Which Keras layer each variable and op belongs to, as the user named it.

Filled by the Keras hooks when they first see a model; read by the probe (the layer of an op),
the recorder (per-layer statistics, weights already non-finite) and `locate` (layer names in
graph scopes). Kept per watched run.
"""

from __future__ import annotations


class LayerIndex:
    def __init__(self):
        self.layer_of_variable: dict = {}   # id(variable) -> (layer name, variable name)
        self.user_layers: set = set()       # ids of the layers users put in their models
        self.names: set = set()             # every layer name, nested layers included
        self.models: list = []              # the models seen, in order

    def add_model(self, model) -> None:
        """Each variable -> the layer the user put in the model (an RNN, not its inner cell;
        a custom layer, not the Dense inside it); nested models are opened up."""
        if any(m is model for m in self.models):
            return
        self.models.append(model)
        for layer in user_layers(model):
            self.user_layers.add(id(layer))
            for var in getattr(layer, "variables", []):
                self.layer_of_variable.setdefault(id(var), (layer.name, short_name(var)))
        try:
            every = list(model._flatten_layers(include_self=False, recursive=True))
        except Exception:
            every = list(getattr(model, "layers", []))
        self.names.update(layer.name for layer in every)

    def owner(self, variable) -> tuple:
        """(layer name or None, variable name)."""
        return self.layer_of_variable.get(id(variable), (None, getattr(variable, "name", "?")))


def user_layers(model) -> list:
    """The layers of a model as its author listed them, nested models opened up."""
    import keras
    out = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            out.extend(user_layers(layer))
        else:
            out.append(layer)
    return out


def short_name(var) -> str:
    name = getattr(var, "name", "") or ""
    return name.split("/")[-1].split(":")[0]
