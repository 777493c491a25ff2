package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEnvTableListsEverySetting: the README's table of settings names
// every variable the bridge's and the ingress's --help list.
func TestEnvTableListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([A-Z][A-Z0-9_]+)`").FindAllStringSubmatch(first, -1) {
			table[m[1]] = true
		}
	}
	for _, cmd := range []string{"bridge", "webhook-ingress"} {
		c := exec.Command("go", "run", "./cmd/"+cmd, "--help")
		c.Dir = "../.."
		out, _ := c.CombinedOutput() // --help exits 0 and prints to stderr
		vars := regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`).FindAllStringSubmatch(string(out), -1)
		if len(vars) < 10 {
			t.Fatalf("%s --help listed %d settings:\n%s", cmd, len(vars), out)
		}
		for _, v := range vars {
			if !table[v[1]] {
				t.Errorf("%s reads %s, which the README's table of settings does not list", cmd, v[1])
			}
		}
	}
}

// TestMarkdownLinksStayInTheRepository: every relative link of the
// project's Markdown files names a file or folder of the repository.
func TestMarkdownLinksStayInTheRepository(t *testing.T) {
	root, _ := filepath.Abs("../..")
	out, err := exec.Command("git", "-C", root, "ls-files", "*.md").Output()
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, file := range strings.Fields(string(out)) {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			path := filepath.Join(root, filepath.Dir(file), target)
			if rel, err := filepath.Rel(root, path); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links to %s, outside the repository", file, m[1])
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", file, m[1])
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d links", checked)
	}
}
