package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v2"
)

// chartMetadata is the part of Chart.yaml templates may read as .Chart.
type chartMetadata struct {
	Name       string `yaml:"name"`
	Version    string `yaml:"version"`
	AppVersion string `yaml:"appVersion"`
}

func readChartMetadata(file string) (chartMetadata, error) {
	var metadata chartMetadata
	source, err := os.ReadFile(file)
	if err != nil {
		return metadata, err
	}
	if err := yaml.Unmarshal(source, &metadata); err != nil {
		return metadata, fmt.Errorf("%s: %w", file, err)
	}
	return metadata, nil
}

// readValues reads the chart's defaults and merges each override file over them, in order.
func readValues(defaultsFile string, overrideFiles []string) (map[string]interface{}, error) {
	values, err := readYAMLFile(defaultsFile)
	if err != nil {
		return nil, err
	}
	for _, file := range overrideFiles {
		override, err := readYAMLFile(file)
		if err != nil {
			return nil, err
		}
		mergeValues(values, override)
	}
	return values, nil
}

func readYAMLFile(file string) (map[string]interface{}, error) {
	source, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	document, err := decodeYAML(source)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return document, nil
}

// decodeYAML decodes as Helm does (sigs.k8s.io/yaml): through JSON, so every number is a float64.
// That is why a template must format large numbers itself: 1000000 prints as 1e+06.
func decodeYAML(source []byte) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(source, &raw); err != nil {
		return nil, err
	}
	encoded, err := json.Marshal(stringKeys(raw))
	if err != nil {
		return nil, err
	}
	document := map[string]interface{}{}
	if err := json.Unmarshal(encoded, &document); err != nil {
		return nil, fmt.Errorf("not a mapping at the top level: %w", err)
	}
	return document, nil
}

// stringKeys turns yaml.v2's map[interface{}]interface{} into maps JSON can encode.
func stringKeys(value interface{}) interface{} {
	switch typed := value.(type) {
	case map[interface{}]interface{}:
		converted := make(map[string]interface{}, len(typed))
		for key, item := range typed {
			converted[fmt.Sprint(key)] = stringKeys(item)
		}
		return converted
	case []interface{}:
		for i, item := range typed {
			typed[i] = stringKeys(item)
		}
	}
	return value
}

// mergeValues applies Helm's coalescing: maps merge key by key, anything else replaces, and null
// removes the key (how a user turns off a default).
func mergeValues(into, override map[string]interface{}) {
	for key, value := range override {
		if value == nil {
			delete(into, key)
			continue
		}
		overrideMap, overrideIsMap := value.(map[string]interface{})
		intoMap, intoIsMap := into[key].(map[string]interface{})
		if overrideIsMap && intoIsMap {
			mergeValues(intoMap, overrideMap)
			continue
		}
		into[key] = value
	}
}

// chartFiles is .Files. As in Helm, a file that cannot be read gets an empty string.
type chartFiles struct{ root string }

func (files chartFiles) Get(name string) string {
	source, err := os.ReadFile(filepath.Join(files.root, name))
	if err != nil {
		return ""
	}
	return string(source)
}
