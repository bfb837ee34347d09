"""Validates quixd files against the JSON Schemas `quixd schema` prints, with the real
`jsonschema` package (draft 2020-12).

    validate.py PIPELINE.schema.json CONFIG.schema.json TESTS.schema.json FILE...

Each file's document is checked against the schema its kind names (Pipeline, Config, or a
tests file); a Kubernetes ConfigMap's data entries are checked one by one. Prints one line per
document, `ok NAME` or `refused NAME: reason`; a file that is not YAML is refused too, and
other Kubernetes objects in a file are passed over.
"""
import json
import sys

import jsonschema
import yaml


def main():
    schemas = {}
    for kind, path in zip(("Pipeline", "Config", "tests"), sys.argv[1:4]):
        schema = json.load(open(path))
        jsonschema.Draft202012Validator.check_schema(schema)
        schemas[kind] = jsonschema.Draft202012Validator(schema)
    for path in sys.argv[4:]:
        try:
            loaded = [document for document in yaml.safe_load_all(open(path)) if document is not None]
        except yaml.YAMLError as error:
            print(f"refused {path}: not YAML: {str(error).splitlines()[0]}")
            continue
        documents = []
        for document in loaded:
            if isinstance(document, dict) and document.get("kind") == "ConfigMap":
                documents += [(f"{path}:{key}", yaml.safe_load(text)) for key, text in document["data"].items()]
            elif isinstance(document, dict) and "tests" not in document and "/" in str(document.get("apiVersion", "")) \
                    and not str(document.get("apiVersion")).startswith("quixd/"):
                continue  # another Kubernetes object
            else:
                documents.append((path, document))
        for name, document in documents:
            kind = document.get("kind") if isinstance(document, dict) else None
            kind = "tests" if isinstance(document, dict) and "tests" in document else kind
            validator = schemas.get(kind, schemas["Pipeline"])
            errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
            if errors:
                print(f"refused {name}: {list(errors[0].path)}: {errors[0].message[:200]}")
            else:
                print(f"ok {name}")


main()
