// Command render renders a Helm chart the way `helm template` does, for machines where no helm
// binary can be installed: Go's text/template with the sprig functions and the few Helm functions
// the atdirectory chart uses. It covers that chart, not every chart.
//
//	render -chart helm/atdirectory [-f values.yaml]... [-name atdirectory] [-namespace default] [-output manifests|notes|values]
//
// manifests: every rendered template but the partials and NOTES.txt, each after a
// "---\n# Source: <path>" line as helm template prints them. notes: the rendered NOTES.txt.
// values: the merged values as JSON, the document Helm checks against values.schema.json.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

type valueFiles []string

func (files *valueFiles) String() string        { return strings.Join(*files, ",") }
func (files *valueFiles) Set(file string) error { *files = append(*files, file); return nil }

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	releaseName := flag.String("name", "atdirectory", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	output := flag.String("output", "manifests", "manifests, notes or values")
	var overrides valueFiles
	flag.Var(&overrides, "f", "values file merged over the chart's values.yaml (repeatable)")
	flag.Parse()
	if *chartDir == "" {
		fail(fmt.Errorf("-chart is required"))
	}
	if err := run(*chartDir, *releaseName, *namespace, *output, overrides); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "render:", err)
	os.Exit(1)
}

func run(chartDir, releaseName, namespace, output string, overrides []string) error {
	metadata, err := readChartMetadata(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readValues(filepath.Join(chartDir, "values.yaml"), overrides)
	if err != nil {
		return err
	}
	if output == "values" {
		encoded, err := json.MarshalIndent(values, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(encoded))
		return nil
	}
	templates, err := parseTemplates(chartDir, metadata.Name)
	if err != nil {
		return err
	}
	scope := map[string]interface{}{
		"Values":  values,
		"Chart":   metadata,
		"Release": map[string]interface{}{"Name": releaseName, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Files":   chartFiles{root: chartDir},
	}
	notes := metadata.Name + "/templates/NOTES.txt"
	switch output {
	case "notes":
		text, err := execute(templates, notes, scope)
		if err != nil {
			return err
		}
		fmt.Print(text)
	case "manifests":
		for _, name := range templateNames(templates) {
			if strings.HasPrefix(path.Base(name), "_") || name == notes {
				continue
			}
			text, err := execute(templates, name, scope)
			if err != nil {
				return err
			}
			if strings.TrimSpace(text) != "" {
				fmt.Printf("---\n# Source: %s\n%s\n", name, text)
			}
		}
	default:
		return fmt.Errorf("-output must be manifests, notes or values, not %q", output)
	}
	return nil
}

// parseTemplates parses every file of templates/ into one set, named as Helm names them
// ("<chart>/templates/<file>"), so that include finds the partials of _helpers.tpl.
func parseTemplates(chartDir, chartName string) (*template.Template, error) {
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return nil, err
	}
	// Helm's choice for values a template names but nobody set: the zero value, not an error.
	root := template.New("gotpl").Option("missingkey=zero")
	root.Funcs(helmFunctions(root))
	for _, file := range files {
		source, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if _, err := root.New(chartName + "/templates/" + filepath.Base(file)).Parse(string(source)); err != nil {
			return nil, err
		}
	}
	return root, nil
}

func templateNames(templates *template.Template) []string {
	var names []string
	for _, t := range templates.Templates() {
		if strings.Contains(t.Name(), "/templates/") {
			names = append(names, t.Name())
		}
	}
	sort.Strings(names)
	return names
}

func execute(templates *template.Template, name string, scope map[string]interface{}) (string, error) {
	var out strings.Builder
	if err := templates.ExecuteTemplate(&out, name, scope); err != nil {
		return "", err
	}
	// Helm removes what missingkey=zero prints for a missing key of an interface map.
	return strings.ReplaceAll(out.String(), "<no value>", ""), nil
}
