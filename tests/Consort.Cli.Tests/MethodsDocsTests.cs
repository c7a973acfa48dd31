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
        Assert.Contains("| `deferral_rate` | float | `0.5` | [0, 1] |", md);
        Assert.Contains("`max_tokens` (`max_response_length`, `max_new_tokens`)", md);
    }
}
