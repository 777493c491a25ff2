// Package charttest renders the smartrent-bridge Helm chart with the Helm
// SDK and checks the rendered objects. It is its own module so that Helm
// and the Kubernetes libraries stay out of the product's dependencies;
// `make chart` (part of `make test`) runs it.
package charttest
