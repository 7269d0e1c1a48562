package main

import (
	"encoding/json"
	"errors"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v2"
)

// helmFunctions is sprig's function map as Helm trims and extends it; only the Helm functions the
// chart uses are here, so a template calling another one fails to parse instead of rendering wrong.
func helmFunctions(root *template.Template) template.FuncMap {
	functions := sprig.TxtFuncMap()
	// Helm removes these so a chart renders the same on every machine.
	delete(functions, "env")
	delete(functions, "expandenv")
	functions["include"] = func(name string, data interface{}) (string, error) {
		var out strings.Builder
		err := root.ExecuteTemplate(&out, name, data)
		return out.String(), err
	}
	functions["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil || value == "" {
			return value, errors.New(message)
		}
		return value, nil
	}
	functions["toYaml"] = toYAML
	return functions
}

// toYAML is Helm's toYaml (sigs.k8s.io/yaml): through JSON, keys sorted, no trailing newline.
func toYAML(value interface{}) string {
	encoded, err := json.Marshal(value)
	if err != nil {
		return ""
	}
	var document interface{}
	if err := yaml.Unmarshal(encoded, &document); err != nil {
		return ""
	}
	out, err := yaml.Marshal(document)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}
