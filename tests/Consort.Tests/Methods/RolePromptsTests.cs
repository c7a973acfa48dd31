using Consort.Methods;

namespace Consort.Tests.Methods;

public class RolePromptsTests
{
    private static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["answer"] = new("{question}\n{format}", "question"),
        ["revise"] = new("Others said:\n{answers}\nYour answer to {question}? {{literal}}", "question", "answers"),
    });

    [Fact]
    public void Renders_placeholders_format_and_literal_braces()
    {
        var answers = new AnswerExtractor(s => s, "Answer with one word.");
        Assert.Equal("Q?\nAnswer with one word.", Prompts.Render("answer", new Dictionary<string, string> { ["question"] = "Q?" }, answers));
        Assert.Equal("Others said:\nA, B\nYour answer to Q? {literal}",
            Prompts.Render("revise", new Dictionary<string, string> { ["question"] = "Q", ["answers"] = "A, B" }));
    }

    [Fact]
    public void Overrides_replace_defaults_and_bad_roles_or_placeholders_are_named()
    {
        var custom = Prompts.With(new Dictionary<string, string> { ["answer"] = "Please: {question}" }, null, ".", "run 'r' (method m)");
        Assert.Equal("Please: x", custom.Render("answer", new Dictionary<string, string> { ["question"] = "x" }));
        Assert.Equal("{question}\n{format}", Prompts.Template("answer"));
        var e = Assert.Throws<ConfigException>(() => Prompts.With(new Dictionary<string, string> { ["judge"] = "x" }, null, ".", "run 'r' (method m)"));
        Assert.Contains("unknown role 'judge'; roles: answer, revise", e.Message);
        e = Assert.Throws<ConfigException>(() => Prompts.With(new Dictionary<string, string> { ["answer"] = "{answers}" }, null, ".", "run 'r' (method m)"));
        Assert.Contains("unknown placeholder '{answers}'; available: {question}, {format}", e.Message);
    }

    [Fact]
    public void A_prompts_file_overrides_too()
    {
        using var dir = new Consort.Testing.TempDir();
        File.WriteAllText(dir.File("p.json"), """{"revise": "R {answers}"}""");
        var p = Prompts.With(null, "p.json", dir.Path, "w");
        Assert.Equal("R z", p.Render("revise", new Dictionary<string, string> { ["answers"] = "z" }));
    }
}
