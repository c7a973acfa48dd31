using System.CommandLine;
using System.Reflection;
using Consort.Cli;

// Every ICliCommand in this assembly is a subcommand: adding a command is adding one file under Commands/.
var root = new RootCommand("Consort: several language models working together.");
foreach (var type in Assembly.GetExecutingAssembly().GetTypes()
             .Where(t => typeof(ICliCommand).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
             .OrderBy(t => t.Name))
{
    root.Subcommands.Add(((ICliCommand)Activator.CreateInstance(type)!).Build());
}
return await CliRunner.InvokeAsync(root, args);
