using Consort.Cli.Commands;
using Consort.Methods;
using Consort.Testing;

namespace Consort.Cli.Tests;

public class MethodsDocsTests
{
    [Fact]
    public void Docs_methods_md_is_rendered_from_the_method_declarations()
    {
        var path = Path.Combine(TestPaths.RepoRoot, "docs", "methods.md");
        var expected = MethodsCommand.Markdown(MethodRegistry.Methods);
        Assert.True(File.Exists(path) && File.ReadAllText(path) == expected,
            "docs/methods.md is out of date: regenerate it with `./consort methods --markdown > docs/methods.md`");
    }

    [Fact]
    public void The_markdown_lists_every_method_with_its_moco_names_and_hyperparameters()
    {
        var md = MethodsCommand.Markdown(MethodRegistry.Methods);
        foreach (var m in MethodRegistry.Methods)
        {
            Assert.Contains($"## {m.Metadata.Name}", md);
            foreach (var a in m.Metadata.Aliases) Assert.Contains($"`{a}`", md);
        }
        Assert.Contains("| `deferral_rate` (`percentage`) | float | `0.5` | [0, 1] |", md);
        Assert.Contains("`max_tokens` (`max_response_length`, `max_new_tokens`)", md);
    }

    [Fact]
    public async Task Every_method_has_an_example_config_that_validates_as_consort_run_would()
    {
        var problems = new List<string>();
        using var dir = new TempDir();
        foreach (var m in MethodRegistry.Methods)
        {
            var path = Path.Combine(TestPaths.RepoRoot, MethodsCommand.ExamplePath(m.Metadata.Name));
            if (!File.Exists(path)) { problems.Add($"{m.Metadata.Name}: {MethodsCommand.ExamplePath(m.Metadata.Name)} is missing"); continue; }
            try
            {
                var plan = await RunPlan.PrepareAsync(new RunRequest { ConfigPath = path, OutDir = dir.File(m.Metadata.Name) }, null, download: false, default);
                // The method may be the run itself or a member inside it (an adversarial member of a vote).
                static IEnumerable<string?> Methods(Consort.Config.ModelSpec spec) => spec is Consort.Config.CollaborationSpec c
                    ? c.Members.SelectMany(Methods).Prepend(MethodRegistry.Find(c.Method)?.Metadata.Name)
                    : ["single_model"];
                var methods = plan.Runs.SelectMany(r => Methods(r.Model));
                if (!methods.Contains(m.Metadata.Name)) problems.Add($"{m.Metadata.Name}: its example runs no {m.Metadata.Name}");
            }
            catch (ConsortException e) { problems.Add($"{m.Metadata.Name}: {e.Message}"); }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
