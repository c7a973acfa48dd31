using System.CommandLine;

namespace Consort.Cli.Commands;

/// <summary><c>consort help [COMMAND...]</c>: the help of consort or of a command (the same as <c>--help</c>).</summary>
public sealed class HelpCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var words = new Argument<string[]>("command") { Description = "The command to explain (e.g. run, or bench merge).", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("help", "Show the help of consort or of one of its commands.") { words };
        cmd.SetAction(pr =>
        {
            var path = pr.GetValue(words) ?? [];
            var root = CliApp.CreateRoot();
            // Walk to the named command first, so an unknown name is one clear line.
            Command at = root;
            foreach (var w in path)
                at = at.Subcommands.FirstOrDefault(c => c.Name == w || c.Aliases.Contains(w))
                     ?? throw new ConsortException($"help: no command '{string.Join(" ", path)}'; commands: {string.Join(", ", at.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}");
            return root.Parse([.. path, "--help"]).Invoke();
        });
        return cmd;
    }
}
