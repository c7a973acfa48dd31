using System.CommandLine;

namespace Consort.Cli;

/// <summary>A subcommand of <c>consort</c>. Implementations are discovered by reflection.</summary>
public interface ICliCommand
{
    /// <summary>Builds the command with its options and action.</summary>
    Command Build();
}

/// <summary>Runs the parsed command and turns user errors into a one-line reason and a non-zero exit code.</summary>
public static class CliRunner
{
    /// <summary>Parses and invokes; exceptions become "error: ..." on stderr and exit code 1 (2 for usage errors).</summary>
    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                foreach (var err in parsed.Errors) Console.Error.WriteLine($"error: {err.Message}");
                return 2;
            }
            return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }, cts.Token);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("error: cancelled");
            return 130;
        }
        catch (ConsortException e)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or HttpRequestException)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return 1;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"error: internal: {e.GetType().Name}: {OneLine(e.Message)}");
            if (Environment.GetEnvironmentVariable("CONSORT_DEBUG") == "1") Console.Error.WriteLine(e);
            return 1;
        }
    }

    /// <summary>Error text as one terminal-safe line: control characters escaped, at most 4,000 characters.</summary>
    public static string OneLine(string message) => MessageText.Escape(message, 4000);
}

/// <summary>A benchmark: a subcommand of <c>consort bench</c> (not of the root). Discovered by reflection.</summary>
public interface IBenchCommand
{
    /// <summary>Builds the benchmark's command (its name is the word after "bench").</summary>
    Command Build();
}
