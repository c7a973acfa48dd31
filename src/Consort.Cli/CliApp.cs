using System.CommandLine;
using System.CommandLine.Help;
using System.Reflection;

namespace Consort.Cli;

/// <summary>The <c>consort</c> command tree.</summary>
public static class CliApp
{
    /// <summary>Builds the root command: every <see cref="ICliCommand"/> in this assembly is a subcommand,
    /// so adding a command is adding one file under Commands/.</summary>
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("Consort: several language models working together.");
        foreach (var type in Assembly.GetExecutingAssembly().GetTypes()
                     .Where(t => typeof(ICliCommand).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
                     .OrderBy(t => t.Name))
            root.Subcommands.Add(((ICliCommand)Activator.CreateInstance(type)!).Build());
        // `consort` alone prints the help rather than an error.
        root.SetAction(pr => { new HelpAction().Invoke(pr); return 0; });
        return root;
    }
}
